"""``python -m reconstruction.pipeline``: regenerate configs/reconstruction.yaml from the code defaults."""
from reconstruction.pipeline.config import write_default_config

print(write_default_config())
