"""lightning_depth.models"""
