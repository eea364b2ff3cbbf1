"""poolcli: convolution kernels and CNN-style pooling for images, compiled with Numba.

>>> import numpy as np, poolcli
>>> poolcli.pool(np.arange(16, dtype=np.uint8).reshape(4, 4), "max", 2)
array([[ 5,  7],
       [13, 15]], dtype=uint8)
"""

__version__ = "0.1.0"
__all__ = ["convolve", "pool", "conv2d", "get_kernel", "run", "Pipeline", "__version__"]


def __getattr__(name):
    # NumPy and Numba load on first use, so `poolcli --help` starts fast.
    if name in ("convolve", "pool", "get_kernel"):
        from . import api

        return getattr(api, name)
    if name == "conv2d":
        from . import layers

        return layers.conv2d
    if name in ("run", "Pipeline"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'poolcli' has no attribute {name!r}")


def __dir__():
    # the lazy names too, so tab completion and dir(poolcli) list them
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})
