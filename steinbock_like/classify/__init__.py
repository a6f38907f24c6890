"""Pixel classification: turning multichannel images into class probabilities."""
