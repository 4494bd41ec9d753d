# The course hub's JupyterHub configuration: `make hub` and tests/test_hub.py.
#
# Run it through hub/course_hub.py (`python -m hub`), which creates the users,
# the exchange and the course first and then starts
#     jupyterhub -f hub/jupyterhub_config.py
# with NINJA_HUB_SETTINGS naming a JSON file of this run's ports and folders
# (everything that differs from one run to the next; the rest is below).
#
# What it sets up, in nbgrader's "one class, one grader" arrangement:
# * JupyterHub on 127.0.0.1 only, behind configurable-http-proxy (npm, pinned in
#   hub/package.json, installed into build/node by the Makefile);
# * passwords: PAM against real local users when the hub runs as root, else
#   one shared password (no local users, no isolation: a try-out only);
# * one single-user server per user, a local process running JupyterLab from the
#   project's lock in build/hub-venv (the notebooks import `autograder`), with nbgrader's
#   extensions: students get the Assignments panel and the Validate button,
#   the instructor also the formgrader and the course list;
# * nbgrader's settings from JUPYTER_CONFIG_PATH (the role of /etc/jupyter on a
#   real hub): the course id and the exchange folder.

import json
import os
import sys

c = get_config()  # noqa: F821 (defined by JupyterHub when it loads this file)

with open(os.environ["NINJA_HUB_SETTINGS"], encoding="utf-8") as settings_file:
    run = json.load(settings_file)

# ---- where it listens: loopback only, ports chosen free by the launcher
c.JupyterHub.bind_url = run["public_url"]  # the proxy: what a browser opens
c.JupyterHub.hub_bind_url = run["hub_url"]  # the hub's own server, behind the proxy
c.ConfigurableHTTPProxy.api_url = run["proxy_api_url"]
c.ConfigurableHTTPProxy.command = [run["proxy"]]
c.ConfigurableHTTPProxy.auth_token = run["proxy_token"]
c.ConfigurableHTTPProxy.should_start = True  # the hub starts the proxy and stops it
c.ConfigurableHTTPProxy.pid_file = os.path.join(run["state"], "proxy.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server
c.JupyterHub.cleanup_proxy = True

# ---- the hub's own state: database, cookie secret, pid file (root-only folder)
c.JupyterHub.db_url = "sqlite:///" + os.path.join(run["state"], "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(run["state"], "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(run["state"], "jupyterhub.pid")

# ---- who may log in
instructors = run["instructors"]
students = run["students"]
c.Authenticator.allowed_users = set(instructors) | set(students)
if run["real_users"]:
    # Real accounts: the password is the user's Unix password (PAM, service "login").
    c.JupyterHub.authenticator_class = "pam"
    c.PAMAuthenticator.open_sessions = False  # no login session bookkeeping for a web login
    c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
else:
    # No root, so no accounts: one password for everyone, every server runs as
    # the same Unix user. Nothing keeps one "user" out of another's files.
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = run["shared_password"]
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.SimpleLocalProcessSpawner.home_dir_template = run["home_template"]

# ---- the single-user servers: JupyterLab from build/hub-venv (the project's lock, runnable by every user)
venv_bin = os.path.dirname(sys.executable)  # the hub runs from the users' venv (build/hub-venv)
c.Spawner.cmd = [os.path.join(venv_bin, "jupyterhub-singleuser")]
c.Spawner.ip = "127.0.0.1"
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"  # the user's home: where the Assignments panel fetches to
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.args = [
    "--LabApp.extension_manager=readonly",  # the default one asks PyPI for versions
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, for the browser test
]
if not run["real_users"] and os.geteuid() == 0:
    c.Spawner.args.append("--allow-root")  # one shared Unix user, and it is root
c.Spawner.env_keep = ["PATH", "LANG", "LC_ALL"]


def _config_path(spawner):
    """JUPYTER_CONFIG_PATH for a user: the course's settings, and for students the instructors' tools switched off."""
    paths = [run["config_students"]] if spawner.user.name in students else []
    return os.pathsep.join(paths + [run["config_course"]])


c.Spawner.environment = {
    "JUPYTER_CONFIG_PATH": _config_path,
    "PATH": venv_bin + os.pathsep + "/usr/local/bin:/usr/bin:/bin",
    **run.get("environment", {}),
}
