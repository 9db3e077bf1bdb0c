"""The viewer: reads gradbatch files only (never torch or the engine).

No GL: ``state`` (what the window shows: job, plane, layers, paths, requests and responses),
``loader`` (window requests read at the pyramid level the view needs, on a thread), ``prepare``
(numpy before upload). GL: ``visuals`` and ``arrows`` (the layers), ``canvas`` (the window:
vispy events into the state, the state drawn), ``render`` (headless PNGs, and the pictures jobs
ask for with ``render:``).
"""

__all__ = ["KEYS"]

KEYS = {  # the window's keys: shown by `gradbatch view --help` and in the README
    "i a s p b o": "toggle image, arrows, streamlines, paths, basins, contours",
    "space": "play or pause the descent paths, step by step",
    "[ ]": "paths a fiftieth of their steps back or forward",
    ", .": "a 3D job: move the slice plane one grid step down or up",
    "j": "next job in the file",
    "d": "flip the arrows (ascent or descent)",
    "r": "reset the view",
    "c": "screenshot to FILE-N.png",
}
