"""Seeded synthetic data: texture crops with planted defects, and generators that write the
MVTec AD, UCSD and pool layouts (what ``dfr demo`` runs on), and large non-square textures with
small defects in the MVTec AD layout (to measure tiled inference). Each generator writes the layout
its reader in :mod:`dfr.data.readers` expects and returns what it wrote, so the two can be
checked against each other."""
from dfr.data.synthetic.defects import (
           TEXTURES,
           DefectDataset,
           defect_dataset,
           plant_defect,
           procedural_texture,
           texture,
)
from dfr.data.synthetic.large import large_texture_dataset, write_large_textures
from dfr.data.synthetic.mvtec import write_mvtec_like
from dfr.data.synthetic.pool import (
           SyntheticPool,
           SyntheticPoolCameras,
           write_pool_cameras,
           write_pool_like,
)
from dfr.data.synthetic.ucsd import SyntheticUCSD, write_ucsd_like

__all__ = ["TEXTURES", "DefectDataset", "SyntheticPool", "SyntheticPoolCameras", "SyntheticUCSD", "defect_dataset",
           "large_texture_dataset", "plant_defect", "procedural_texture", "texture", "write_large_textures",
           "write_mvtec_like", "write_pool_cameras", "write_pool_like", "write_ucsd_like"]
