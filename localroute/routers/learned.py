"""The learned routers (embedding kNN/MLP/MF, BERT, binary decoder) register here."""
