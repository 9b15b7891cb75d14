"""ComfyUI-RALU: region-adaptive latent upsampling for FLUX in ComfyUI. Registration only."""

try:
    from comfy_api.latest import ComfyExtension
except ImportError:  # imported outside ComfyUI, e.g. by the unit tests of ralu/
    ComfyExtension = None

WEB_DIRECTORY = "./web"

if ComfyExtension is not None:
    from .nodes import NODES

    class RaluExtension(ComfyExtension):
        async def get_node_list(self):
            return NODES

    async def comfy_entrypoint() -> ComfyExtension:
        from .plan_preview import register_routes  # ComfyUI calls this once, after its server is up

        register_routes()
        return RaluExtension()
