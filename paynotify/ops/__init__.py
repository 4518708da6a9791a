"""Operations: health, readiness, metrics and the operator console."""
