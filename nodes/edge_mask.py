from comfy_api.latest import io, ui

from ..input_checks import check_mask
from ..ralu.edge_map import FULL_RES_CELL, early_upsample_mask
from ..ralu.sampler import early_upsample_count
from ..ralu.streams import image_generators
from .plan_type import RaluPlan
from .shared_inputs import faithful_gray_input, force_mask_input


class RALUEdgeMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RALUEdgeMask",
            display_name="RALU Edge Mask",
            category="sampling/RALU",
            description="Shows which regions RALU upsamples early for a picture: the 32x32-pixel cells "
            "with the most Canny edges, plus any regions you force.",
            inputs=[
                io.Image.Input(
                    "image",
                    tooltip="A picture at the size you will generate (width and height multiples "
                    "of 32). It is halved first, as RALU sees its stage-1 result.",
                ),
                RaluPlan.Input(
                    "plan",
                    optional=True,
                    tooltip="Takes the early upsample ratio from this plan; "
                    "without it, up_ratio below is used.",
                ),
                io.Float.Input(
                    "up_ratio",
                    default=0.3,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Fraction of cells upsampled early, when no plan is connected.",
                ),
                force_mask_input(),
                faithful_gray_input(),
                io.Int.Input(
                    # Not "seed": the frontend would add a randomize-after-each-run control to it.
                    "tie_break_seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    tooltip="Orders cells with equal edge counts (flat regions), as the reference's random "
                    "jitter does. RALU KSampler orders them from its seed the same way, so the KSampler's "
                    "seed here shows its order.",
                ),
            ],
            outputs=[
                io.Mask.Output(
                    display_name="mask", tooltip="1 on the cells upsampled early, at the picture's size."
                ),
                io.Image.Output(display_name="edges", tooltip="The Canny edge map the cells were scored on."),
            ],
        )

    @classmethod
    def execute(
        cls, image, up_ratio, faithful_gray, tie_break_seed, plan=None, force_mask=None
    ) -> io.NodeOutput:
        height, width = image.shape[1:3]
        if height % FULL_RES_CELL or width % FULL_RES_CELL:
            raise ValueError(
                f"RALU Edge Mask needs a picture whose width and height are multiples of "
                f"{FULL_RES_CELL} pixels, as RALU generates them; got {width}x{height}. "
                f"Crop or scale it first (e.g. ImageScale)."
            )
        check_mask(force_mask, image.shape[0], height, width)
        ratio = up_ratio if plan is None else plan.up_ratio
        k = early_upsample_count(ratio, (height // FULL_RES_CELL) * (width // FULL_RES_CELL))
        mask, edge_image = early_upsample_mask(
            image.cpu(),
            k,
            None if force_mask is None else force_mask.cpu(),
            faithful_gray,
            image_generators(tie_break_seed, range(image.shape[0])),
        )
        return io.NodeOutput(mask, edge_image, ui=ui.PreviewMask(mask, cls=cls))
