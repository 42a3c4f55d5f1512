"""Pictures in: LFW and your own folders, reading images, face detection, the crop policy, preprocessing, picture quality, and the tf.data pipeline."""
