"""lightning_depth.io"""
