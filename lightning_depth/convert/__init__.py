"""lightning_depth.convert"""
