"""Lightning training for monocular and stereo depth estimation."""

__version__ = "0.1.0"
