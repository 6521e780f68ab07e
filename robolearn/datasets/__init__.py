"""LeRobotDataset v3.0 reading, writing, conversion and the Lightning DataModule."""
