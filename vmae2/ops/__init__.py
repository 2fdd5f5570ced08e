"""Pure, static-shape maths of VideoMAE V2: masks, targets, losses, batch mixing.

Functions of arrays only (no parameters, no config objects), jit-able on any
device; each names the official formula it reproduces.
"""
