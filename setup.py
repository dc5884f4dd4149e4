"""pip install --no-build-isolation .  - the Python module `recur` (docs/python.md).

Builds python/'s extension with the project's own CMake build (target recur_python, Release,
tests and benchmarks off) in build-python/cmake, for the interpreter running pip, and packages
python/recur/ around it. Needs only Debian's packages (scripts/setup.sh test: cmake, g++,
pybind11-dev, python3-dev, python3-setuptools, python3-wheel) and no network. Debian's pip
installs into a virtual environment (python3 -m venv --system-site-packages ENV) or with
--target DIR; see docs/python.md.
"""
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(recur VERSION ([0-9.]+)", f.read()).group(1)


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.environ.get("RECUR_PIP_BUILD_DIR") or os.path.join(ROOT, "build-python", "cmake")
        configure = ["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                     "-DPython_EXECUTABLE=" + sys.executable, "-DRECUR_PYTHON=ON",
                     "-DRECUR_BUILD_TESTS=OFF", "-DRECUR_BUILD_BENCH=OFF"]
        if shutil.which("ccache"):
            configure.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
        jobs = os.environ.get("RECUR_PIP_JOBS") or str(os.cpu_count() or 1)
        subprocess.check_call(configure)
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "recur_python", "-j", jobs])
        built = os.path.join(build_dir, "python", "recur")
        so = [f for f in os.listdir(built) if f.startswith("_recur") and f.endswith(".so")]
        if len(so) != 1:
            raise RuntimeError(f"{built}: expected one _recur*.so after the build, found {so}")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(built, so[0]), target)


setup(
    name="recur",
    version=project_version(),
    description="Recurrent sequence models (RNN, GRU, LSTM) on the CPU: training, sampling, tasks, PyTorch interop",
    packages=["recur"],
    package_dir={"": "python"},
    package_data={"recur": ["__init__.pyi", "py.typed"]},
    ext_modules=[CMakeExtension("recur._recur")],
    cmdclass={"build_ext": CMakeBuild},
    options={"build": {"build_base": "build-python/setuptools"}},
    python_requires=">=3.9",
    zip_safe=False,
)
