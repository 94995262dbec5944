"""lightning_depth.losses"""
