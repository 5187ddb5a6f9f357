"""models/musicnn"""
