"""The experiments of the defense chapters, one module per chapter (``qusecnets``, ...): the models
a chapter trains and the tables it measures, so its notebooks only call and show them."""
