"""lightning_depth.callbacks"""
