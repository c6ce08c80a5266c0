"""scripts/setup.sh must not touch the user's machine (issue 8, item 11):
it installs only what the make target needs, and never stops, disables or
reconfigures a service that was already there. Run against shims of
apt-get, dpkg-query, systemctl and service that record every call, so the
real machine is never changed."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, run, tmpdir  # noqa: E402

SHIM = r"""#!/bin/sh
echo "$(basename "$0") $*" >> "%(log)s"
case "$(basename "$0")" in
dpkg-query)
	# installed: the packages listed in %(inst)s
	for p in $(cat "%(inst)s"); do
		[ "$p" = "$3" ] && { printf 'install ok installed'; exit 0; }
	done
	exit 1 ;;
apt-get)
	[ -e "%(policy)s" ] && echo "policy-rc.d present during apt-get $1" >> "%(log)s"
	exit 0 ;;
esac
exit 0
"""

ALL = ("build-essential pkg-config libuv1-dev libyaml-dev libjansson-dev libsqlite3-dev "
       "libcurl4-openssl-dev libssl-dev libcmocka-dev curl wrk haproxy nginx python3 "
       "prometheus prometheus-alertmanager util-linux strace clang libclang-rt-14-dev linux-perf "
       "python3-yaml python3-jsonschema python3-kubernetes openssl groff-base zsh sqlite3 "
       "chromium faketime").split()


def _setup(target, installed, policy_exists=False):
    d = tmpdir()
    bindir = os.path.join(d, "bin")
    os.mkdir(bindir)
    log, inst, policy = (os.path.join(d, n) for n in ("calls", "installed", "policy-rc.d"))
    with open(inst, "w") as f:
        f.write("\n".join(installed) + "\n")
    open(log, "w").close()
    if policy_exists:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
    for name in ("apt-get", "dpkg-query", "systemctl", "service", "sudo"):
        p = os.path.join(bindir, name)
        with open(p, "w") as f:
            f.write(SHIM % {"log": log, "inst": inst, "policy": policy})
        os.chmod(p, 0o755)
    env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"], POLICY_RC_D=policy)
    r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "setup.sh"), target], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    with open(log) as f:
        calls = f.read().splitlines()
    return calls, os.path.exists(policy), policy


def _installed_by(calls):
    for c in calls:
        if c.startswith("apt-get install"):
            return [w for w in c.split()[2:] if not w.startswith("-")]
    return []


def test_nothing_missing_means_no_apt_and_no_service_touched():
    calls, _, _ = _setup("test", ALL)
    assert [c for c in calls if not c.startswith("dpkg-query")] == [], calls


def test_demo_installs_only_what_the_demo_needs_and_touches_no_service():
    calls, policy_left, _ = _setup("demo", [])
    pkgs = _installed_by(calls)
    assert "libuv1-dev" in pkgs and "curl" in pkgs, pkgs
    for p in ("prometheus", "prometheus-alertmanager", "clang", "nginx", "haproxy", "wrk",
              "chromium", "faketime"):
        assert p not in pkgs, (p, pkgs)
    assert not [c for c in calls if c.startswith(("systemctl", "service"))], calls
    assert not policy_left


def test_services_of_the_users_machine_are_never_stopped_or_disabled():
    # nginx and HAProxy were already installed (the user's), Prometheus is new
    have = [p for p in ALL if p not in ("prometheus", "libcmocka-dev")]
    calls, policy_left, _ = _setup("test", have)
    assert sorted(_installed_by(calls)) == ["libcmocka-dev", "prometheus"], calls
    svc = [c for c in calls if c.startswith(("systemctl", "service"))]
    assert not [c for c in svc if "--now" in c or " stop" in c or "mask" in c], svc
    assert svc == ["systemctl disable prometheus"], svc
    # the services of what is installed now are kept from starting, and the
    # guard is gone afterwards
    assert "policy-rc.d present during apt-get install" in calls, calls
    assert not policy_left


def test_the_dashboard_test_gets_its_browser_and_clock():
    # tests/e2e/test_dashboard.py: Debian's Chromium, and faketime for the
    # summer screenshots; neither ships a service
    calls, _, _ = _setup("test", [p for p in ALL if p not in ("chromium", "faketime")])
    assert sorted(_installed_by(calls)) == ["chromium", "faketime"], calls
    assert not [c for c in calls if c.startswith(("systemctl", "service"))], calls


def test_an_existing_policy_rc_d_is_left_alone():
    calls, policy_left, policy = _setup("demo", [], policy_exists=True)
    assert policy_left
    with open(policy) as f:
        assert f.read() == "#!/bin/sh\nexit 0\n"


run(globals())
