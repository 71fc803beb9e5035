"""The production front's configuration (deploy/nginx.conf), filled in for one server."""

from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent


def nginx_config(listen: str, upstream: str, runtime_dir: Path) -> str:
    """deploy/nginx.conf with its placeholders filled in, as the README's `sed` line does."""
    return ((DEPLOY_DIR / "nginx.conf").read_text().replace("__LISTEN__", listen)
            .replace("__UPSTREAM__", upstream).replace("__RUNTIME_DIR__", str(runtime_dir))
            .replace("__DEPLOY_DIR__", str(DEPLOY_DIR)))
