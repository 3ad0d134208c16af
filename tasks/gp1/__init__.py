"""GP1 pipeline glue: configuration, per-image processing, products, routing and the watcher."""
