"""GUI apps (ilastik, CellProfiler, napari) and Jupyter, on X11 or in the web browser.

- :mod:`~steinbock_like.apps.display`: is an X11 display usable? (one-line answers)
- :mod:`~steinbock_like.apps.vnc`: a virtual desktop served by noVNC (Xvfb, x11vnc, websockify)
- :mod:`~steinbock_like.apps.launch`: run an app on a display, stop everything afterwards
- :mod:`~steinbock_like.apps.launchers`: where each app is and how it starts
- :mod:`~steinbock_like.apps.napari_viewer`: napari with the layout's images, panel and masks
"""
