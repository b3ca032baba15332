"""Seeded synthetic data: texture crops with planted defects, and generators that write the
MVTec AD, UCSD and pool layouts (what ``dfr demo`` runs on). Each generator writes the layout
its reader in :mod:`dfr.data.readers` expects and returns what it wrote, so the two can be
checked against each other."""
from dfr.data.synthetic.defects import (
           TEXTURES,
           DefectDataset,
           defect_dataset,
           plant_defect,
           texture,
)
from dfr.data.synthetic.mvtec import write_mvtec_like
from dfr.data.synthetic.pool import SyntheticPool, write_pool_like
from dfr.data.synthetic.ucsd import SyntheticUCSD, write_ucsd_like

__all__ = ["TEXTURES", "DefectDataset", "SyntheticPool", "SyntheticUCSD", "defect_dataset", "plant_defect", "texture",
           "write_mvtec_like", "write_pool_like", "write_ucsd_like"]
