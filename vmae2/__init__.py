"""vmae2: VideoMAE V2 in JAX/Flax NNX.

Subpackages are imported on demand; importing vmae2 touches no device.
"""

__version__ = '0.1.0'
