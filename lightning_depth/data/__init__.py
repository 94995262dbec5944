"""lightning_depth.data"""
