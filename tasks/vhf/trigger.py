"""TT and QCL of one instrument: the trigger time and the confidence levels of the detection.

Made once the other steps have run: the rate trigger comes from the timing, the image trigger
and the position S/N from the imaging steps (an instrument without imaging has none).
"""

from __future__ import annotations

from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue.instrument_codes import instrument_code
from svomflow.tasks.coded_mask.image_trigger import ImageTrigger
from svomflow.tasks.coded_mask.quick_position import QuickPosition
from svomflow.tasks.step import step
from svomflow.tasks.vhf import fits_products as fp
from svomflow.tasks.vhf.config import TriggerReportConfig
from svomflow.tasks.vhf.curves import InstrumentTiming

__all__ = ["trigger_report"]


@step(name="trigger-report", config=TriggerReportConfig, outputs=("TT", "QCL"))
def trigger_report(
    data: InstrumentEvents,
    timing: InstrumentTiming,
    image: ImageTrigger | None,
    position: QuickPosition | None,
    *,
    config: TriggerReportConfig,
) -> list[Product]:
    """TT (best rate-trigger window, image trigger, on-board TRIGTIME) and QCL (S/N of each)."""
    head = fp.ProductHeader.of(data)
    code = instrument_code(data.name)
    flags = list(data.flags) + list(timing.flags)
    trig = timing.trigger
    tt = fp.trigger_hdus(trig, head, onboard_time=data.trigger_time, image=image, flags=flags)
    qcl: list[fp.Column] = [
        ("RATE_SNR", trig.best.significance if trig else None, "sigma", "best rate trigger"),
        ("IMAGE_SNR", image.snr if image is not None else None, "sigma", "best image trigger"),
        (
            "POSITION_SNR",
            position.position.snr if position is not None else None,
            "sigma",
            "coded-mask fit S/N",
        ),
    ]
    files = tuple(data.files)
    return [
        Product("TT", code, FitsModel.from_hdus(tt), inputs=files),
        Product(
            "QCL",
            code,
            FitsModel.from_hdus(fp.table_hdus(head, extname="CONFLVL", rows=[qcl], flags=flags)),
            inputs=files,
        ),
    ]
