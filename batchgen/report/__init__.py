"""What people read: progress, the summary, the morning report, status and the gallery."""
