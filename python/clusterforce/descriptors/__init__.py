"""What a model sees of a structure: neighbour lists, SOAP power spectra, descriptor distances,
point-group symmetry and farthest-point/CUR selection. Thin wrappers of the compiled core; they
import nothing above ``clusterforce.data``'s level.
"""
