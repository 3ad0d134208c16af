"""Processing steps grouped by domain: numba kernels, pure step functions, thin Prefect tasks."""
