from comfy_api.latest import io, ui

from ..comfy_glue import result_previews, run_ralu_ksampler
from .plan_type import RaluPlan
from .shared_inputs import ListedCombo, faithful_gray_input, force_mask_input


class RALUKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RALUKSampler",
            display_name="RALU KSampler",
            category="sampling/RALU",
            description="Samples a FLUX or SD3 image in three stages (low-res, edges upsampled early, "
            "full-res): 4-7x faster than the plain step count on FLUX.1-dev, 2-3x on SD3 Medium.",
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="A FLUX.1 model (dev, schnell or a fine-tune), LongCat-Image, Ovis-Image or an "
                    "SD3 / SD3.5 model; "
                    "LoRAs and model patches apply as with any KSampler. A ControlNet on the prompts "
                    "guides stages 1 and 3.",
                ),
                io.Conditioning.Input("positive", tooltip="What the picture should show."),
                io.Conditioning.Input("negative", tooltip="What to avoid; only used when cfg is above 1."),
                io.Latent.Input(
                    "latent_image",
                    tooltip="An empty latent of the final size (width and height "
                    "multiples of 32 pixels); its batch size is kept.",
                ),
                RaluPlan.Input("plan", tooltip="Stages, steps and shifts from RALU Stage Planner."),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seed of the initial noise and of the noise added back at each stage change.",
                ),
                io.Float.Input(
                    "cfg",
                    default=1.0,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="Classifier-free guidance scale. FLUX.1-dev uses 1.0 with FluxGuidance, SD3 "
                    "4 to 7 with a negative prompt; "
                    "above 1 the negative prompt is evaluated too (twice the cost).",
                ),
                ListedCombo(
                    "edge_source",
                    options=["vae", "latent", "latent gradient"],
                    default="vae",
                    tooltip="vae: decode the stage-1 estimate with the VAE and find Canny edges there (the "
                    "reference's way); latent: Canny on ComfyUI's preview colours of the latent, no decode; "
                    "latent gradient: a gradient filter on the latent itself, no decode (the paper's "
                    "cheap variant; for few-step models where a decode costs as much as a step).",
                ),
                faithful_gray_input(),
                io.Vae.Input("vae", optional=True, tooltip="The VAE of the model, for edge_source 'vae'."),
                force_mask_input(),
            ],
            outputs=[
                io.Latent.Output(display_name="LATENT", tooltip="The full-resolution result."),
                io.Mask.Output(display_name="early_mask", tooltip="The regions that were upsampled early."),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        positive,
        negative,
        latent_image,
        plan,
        seed,
        cfg,
        edge_source,
        faithful_gray,
        vae=None,
        force_mask=None,
    ) -> io.NodeOutput:
        latent, early, result = run_ralu_ksampler(
            model,
            positive,
            negative,
            latent_image,
            plan,
            vae,
            seed,
            cfg,
            force_mask,
            edge_source,
            faithful_gray,
        )
        l1, l2, l3 = result.tokens_per_stage
        summary = (
            f"tokens per stage: {l1}, {l2}, {l3}; model calls per stage: "
            f"{', '.join(map(str, result.calls_per_stage))}"
        )
        if result.steps_skipped is not None:
            skipped = ", ".join(map(str, result.steps_skipped))
            summary += f"; steps skipped by the step cache per stage: {skipped}"
        if result.edge_fallback is not None:
            summary += f"; the VAE ran out of memory, so the edges came from a {result.edge_fallback}"
        plain, tinted = result_previews(model, result.latent, early)
        # "images" is what the frontend shows on the node; web/ralu_overlay.js swaps in "ralu_plain"
        # when its toggle hides the early regions.
        return io.NodeOutput(
            latent,
            early,
            ui={
                "text": [summary],
                "images": ui.PreviewImage(tinted, cls=cls).values,
                "ralu_plain": ui.PreviewImage(plain, cls=cls).values,
            },
        )
