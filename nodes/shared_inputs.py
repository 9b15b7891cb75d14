"""Inputs the RALU nodes share, so all mean the same thing by them."""

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


class ComboOptions(list):
    """A combo's options as its type: a list, and hashable, since ComfyUI 0.33 looks every input's
    type up in a dict (DYNAMIC_INPUT_LOOKUP) before validating it."""

    def __hash__(self) -> int:
        return hash(tuple(self))


class ListedCombo(io.Combo.Input):
    """A combo whose /object_info type is its list of options, the form stock nodes' combos have.

    ComfyUI 0.3.75 checks a combo value against its options only in that form ("Value not in list"): for
    io.Combo's "COMBO" type it checks nothing, and a bad preset name reached execute as a KeyError. The
    frontend shows both forms as the same dropdown.
    """

    def get_io_type(self):
        return ComboOptions(self.options)
