"""A plain JupyterHub on one Linux host, loopback only: the set-up tests/test_multiuser.py runs.

Every learner is a real system user; the LocalProcessSpawner starts their
single-user server from the venv `make hub-deps` builds (/opt/labsmtp-hub-venv),
as that user. Each lab server then sees JUPYTERHUB_USER and refuses connections
from other users (labsmtp's owner check). For a real workshop on one machine,
use The Littlest JupyterHub instead (docs/instructors.md): it adds a real
login, HTTPS, memory and CPU limits and idle culling. This file has a dummy
authenticator and is for loopback only.

Run (as root):
    LABSMTP_HUB_RUN=/srv/labsmtp-hub LABSMTP_HUB_TOKEN=$(openssl rand -hex 32) \
        /opt/labsmtp-hub-venv/bin/jupyterhub -f deploy/local/jupyterhub_config.py

Settings come from the environment, so a test can give each run its own ports
and files:
    LABSMTP_HUB_RUN        directory for the database, cookie secret and proxy pid (required)
    LABSMTP_HUB_TOKEN      API token of the "labsmtp-admin" service (required)
    LABSMTP_HUB_PORT       public port of the proxy (default 18000)
    LABSMTP_HUB_API_PORT   the proxy's REST API (default 18001)
    LABSMTP_HUB_HUB_PORT   the hub itself, behind the proxy (default 18002)
    LABSMTP_HUB_VENV       the venv of `make hub-deps` (default /opt/labsmtp-hub-venv)
    LABSMTP_HUB_COURSE     the course's folder in each learner's home, put on
                           PYTHONPATH so the lessons import the labsmtp they
                           were handed (default: labsmtp)
"""

import os
import pwd

c = get_config()  # noqa: F821 (JupyterHub provides it)

env = os.environ
run = env["LABSMTP_HUB_RUN"]
venv = env.get("LABSMTP_HUB_VENV", "/opt/labsmtp-hub-venv")
course = env.get("LABSMTP_HUB_COURSE", "labsmtp")

# Everything on loopback: the proxy (public), its API, and the hub behind it.
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(env.get("LABSMTP_HUB_PORT", "18000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env.get("LABSMTP_HUB_HUB_PORT", "18002"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env.get('LABSMTP_HUB_API_PORT', '18001')}"
c.ConfigurableHTTPProxy.command = [f"{venv}/chp/node_modules/.bin/configurable-http-proxy"]
c.ConfigurableHTTPProxy.pid_file = f"{run}/proxy.pid"
c.JupyterHub.pid_file = f"{run}/jupyterhub.pid"
c.JupyterHub.db_url = f"sqlite:///{run}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{run}/jupyterhub_cookie_secret"

# Who may log in: anyone, with any password. Loopback tests only.
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True

# One system user per learner, each server started as that user.
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.cmd = [f"{venv}/bin/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
# Kernels talk to their server over Unix sockets in the learner's home, not TCP
# ports on loopback: learners share one port space, and the fault lab's hundreds
# of short connections took the port a starting kernel had just been given
# ("ZMQError: Address already in use", measured with ten learners).
c.Spawner.args = ["--KernelManager.transport=ipc"]
# A loaded CI machine starting ten servers at once needs more than the defaults.
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120
c.Spawner.environment = {
    # The learner's tools first: git for nbgitpuller, python for terminals.
    "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
    "PYTHONPATH": lambda spawner: os.path.join(pwd.getpwnam(spawner.user.name).pw_dir, course),
}

# A service that creates users and starts their servers over the REST API.
c.JupyterHub.services = [{"name": "labsmtp-admin", "api_token": env["LABSMTP_HUB_TOKEN"]}]
c.JupyterHub.load_roles = [
    {
        "name": "labsmtp-admin",
        "scopes": ["admin:users", "admin:servers", "access:servers", "tokens"],
        "services": ["labsmtp-admin"],
    }
]
