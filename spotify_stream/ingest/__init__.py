"""Files to topics: the Kaggle entity files cleaned and produced, generated data, simulated plays."""
