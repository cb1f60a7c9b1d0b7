"""Where a run's checkpoints and trained LoRA live: a shared absolute path or a URI every node of
the cluster reaches, written through pyarrow.fs."""
from edit_rl.storage.run_storage import (RunStorage, check_storage_reaches_every_node, download_folder,
                                         is_reachable, staged_download, staged_upload, upload_folder)

__all__ = ["RunStorage", "check_storage_reaches_every_node", "download_folder", "is_reachable",
           "staged_download", "staged_upload", "upload_folder"]
