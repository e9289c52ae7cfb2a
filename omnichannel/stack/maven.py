"""Fetching Apache Kafka's jars and Apicurio Registry's distribution from Maven Central with ``mvn``.

Downloads land in the cache directory once; a ``.complete`` marker is written last, so an interrupted
fetch is simply redone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from omnichannel.errors import ServiceStartError
from omnichannel.settings import KAFKA_LOG4J_VERSION, KAFKA_VERSION, REGISTRY_VERSION
from omnichannel.stack.model import Progress

__all__ = ["kafka_classpath", "registry_jar", "require_java"]

_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>omnichannel.local</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId>
      <version>{kafka}</version></dependency>
    <!-- The release tarball adds this SLF4J 1.x binding; without it the broker logs nothing. -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""


def require_java() -> str:
    """Path of a Java 17+ ``java``, or a :class:`ServiceStartError` that says how to get one."""
    java = shutil.which("java")
    if java is None:
        raise ServiceStartError(
            "Java 17 or newer is required to run the local Kafka broker and Schema Registry, and no `java` "
            "is on PATH. Install one (Debian: `apt-get install -y openjdk-17-jre-headless`), or point the "
            "project at running services with KAFKA_BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if match is None or int(match.group(1)) < 17:
        raise ServiceStartError(
            f"{java} is not Java 17 or newer ({(out.stderr or out.stdout).splitlines()[:1]}). "
            "Install Java 17+ and put it first on PATH."
        )
    return java


def _require_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceStartError(
            "Maven (`mvn`) is needed once to fetch Kafka and the registry from Maven Central, and it is "
            "not on PATH. Install it (Debian: `apt-get install -y maven`) or set KAFKA_BOOTSTRAP_SERVERS "
            "and SCHEMA_REGISTRY_URL to use existing services."
        )
    return mvn


def _run_mvn(args: list[str], cwd: Path, what: str) -> None:
    log = cwd / "mvn.log"
    with log.open("w") as out:
        proc = subprocess.run(
            [_require_mvn(), "-B", "-q", *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=1800,
        )
    if proc.returncode != 0:
        raise ServiceStartError(
            f"Fetching {what} from Maven Central failed (mvn exit {proc.returncode}); see {log}. "
            "Check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml)."
        )


def kafka_classpath(cache_dir: Path, progress: Progress) -> str:
    """The broker + tools classpath (``<dir>/*``), fetched on first use."""
    home = cache_dir / f"kafka-{KAFKA_VERSION}"
    libs = home / "libs"
    if not (home / ".complete").exists():
        progress(f"Fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central (first run only)...")
        shutil.rmtree(libs, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        (home / "pom.xml").write_text(_KAFKA_POM.format(kafka=KAFKA_VERSION, log4j=KAFKA_LOG4J_VERSION))
        _run_mvn(
            ["dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
            home,
            f"Apache Kafka {KAFKA_VERSION}",
        )
        (home / ".complete").write_text(KAFKA_VERSION)
    return f"{libs}/*"


def registry_jar(cache_dir: Path, progress: Progress) -> Path:
    """Apicurio Registry's runnable jar (Quarkus fast-jar layout), fetched and unpacked on first use."""
    home = cache_dir / f"apicurio-registry-{REGISTRY_VERSION}"
    jar = home / "dist" / f"apicurio-registry-app-{REGISTRY_VERSION}-runner.jar"
    if not (home / ".complete").exists():
        progress(f"Fetching Apicurio Registry {REGISTRY_VERSION} from Maven Central (first run only)...")
        shutil.rmtree(home / "dist", ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        _run_mvn(
            [
                "dependency:copy",
                f"-Dartifact=io.apicurio:apicurio-registry-app:{REGISTRY_VERSION}:tar.gz:all",
                f"-DoutputDirectory={home}",
            ],
            home,
            f"Apicurio Registry {REGISTRY_VERSION}",
        )
        archive = home / f"apicurio-registry-app-{REGISTRY_VERSION}-all.tar.gz"
        with tarfile.open(archive) as tar:
            tar.extractall(home / "dist", filter="data")
        archive.unlink()
        if not jar.exists():
            raise ServiceStartError(f"The Apicurio archive did not contain {jar.name}; delete {home} and retry.")
        (home / ".complete").write_text(REGISTRY_VERSION)
    return jar
