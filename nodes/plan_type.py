from comfy_api.latest import io

# A RALU_PLAN socket carries a `ralu.plan.Plan` between our nodes.
RaluPlan = io.Custom("RALU_PLAN")
