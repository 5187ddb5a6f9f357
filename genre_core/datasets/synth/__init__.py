"""datasets/synth"""
