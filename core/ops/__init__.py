"""Operations: deployments and schedules, reprocessing, processing status."""
