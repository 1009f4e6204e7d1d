"""Ground-truth data: collecting gym-pusht episodes into local LeRobotDatasets (``world_gym.data``)."""
