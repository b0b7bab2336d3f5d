"""Config groups clara-hydra adds to every config tree (``pkg://clara_hydra.tracking.conf``, appended to Hydra's
search path by ``hydra_plugins/clara_hydra_searchpath``): a tree's own ``tracking/`` options take precedence."""
