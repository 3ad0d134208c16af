"""Operations: the Prefect server, deployments and schedules, reprocessing, alert listening.

The roof of the package: it imports flows and everything below, nothing imports it but the
command line.
"""
