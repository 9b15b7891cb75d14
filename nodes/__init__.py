from .edge_mask import RALUEdgeMask
from .ksampler import RALUKSampler
from .planner import RALUStagePlanner

NODES = [RALUStagePlanner, RALUEdgeMask, RALUKSampler]
