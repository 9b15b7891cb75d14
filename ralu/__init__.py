"""Region-adaptive latent upsampling (RALU, arXiv 2507.08422) as plain torch / numpy / scipy code.

Nothing in this package imports ComfyUI: the nodes glue it to the host.
"""
