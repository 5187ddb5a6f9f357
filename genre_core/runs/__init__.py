"""Run-level commands over stored results, torch-free to import: recording a run from
probabilities (`record`), pooled k-fold (`pooled`), calibrated ensembles (`ensemble`),
bring-your-own predictions (`imported`), export, the HTML report, and the demo pipeline."""
