"""ilastik pixel classification: data preparation, project files and a native backend."""
