"""The delivery pipeline's stages, one job each (see delivery/pipeline.py)."""
