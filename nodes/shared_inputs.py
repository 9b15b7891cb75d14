"""Inputs that RALU Edge Mask and RALU KSampler share, so both mean the same thing by them."""

from comfy_api.latest import io


def faithful_gray_input() -> io.Boolean.Input:
    return io.Boolean.Input(
        "faithful_gray",
        default=True,
        label_on="reference",
        label_off="full range",
        tooltip="reference: gray clipped as the reference code does (everything darker than mid-grey is "
        "flat); full range: edges in dark regions count too.",
    )


def force_mask_input() -> io.Mask.Input:
    return io.Mask.Input(
        "force_mask",
        optional=True,
        tooltip="Regions always upsampled early (e.g. faces), in addition to the cells with the most edges.",
    )
