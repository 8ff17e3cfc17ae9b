# Mirrorband band firmware (MicroPython). Pure modules (no hardware imports):
# config, emg, imu, baseline, task, detector, events, pipeline.
VERSION = "0.1.0"
