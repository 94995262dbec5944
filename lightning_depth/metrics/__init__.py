"""lightning_depth.metrics"""
