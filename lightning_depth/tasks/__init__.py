"""lightning_depth.tasks"""
