"""Reading and writing videos, frame folders and arrays as uint8 (T, H, W, 3) RGB.

Frame ``i`` of a file is the ``i``-th frame the decoder returns in presentation order, counted
from 0, whatever the timestamps say; reads decode sequentially from the start (no seeking), which
is exact for every codec and cheap for short clips (UCF-101, MSR-VTT). ``decord`` is available as
an optional backend for long files. A file that cannot deliver the frames asked for raises an
``InputError`` that names the file, the frame asked for and how many frames exist.

``write_video`` exists for previews: mp4 is lossy, and metrics never read such files back.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from evalkit.errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
ARRAY_EXTENSIONS = (".npy", ".npz")

Backend = Literal["pyav", "decord"]
T = TypeVar("T")


@dataclass(frozen=True)
class VideoInfo:
    """What a container says about its first video stream."""

    path: str
    frames: int
    fps: float
    height: int
    width: int


def frame_indices(frames: int | None, start: int = 0, stride: int = 1) -> list[int] | None:
    """The frame numbers that ``frames``/``start``/``stride`` select (``None``: all from ``start``)."""
    if start < 0:
        raise InputError(f"start must be >= 0, got {start}")
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    if frames is None:
        return None
    if frames < 1:
        raise InputError(f"frames must be >= 1, got {frames}")
    return [start + k * stride for k in range(frames)]


def _asked(indices: Sequence[int] | None, start: int) -> str:
    if not indices:
        return f"frames from {start} on"
    return f"frame {indices[0]}" if len(indices) == 1 else f"frames {min(indices)}..{max(indices)}"


def _open_av(path: str | os.PathLike, purpose: str = ""):
    import av

    path = str(path)
    why = f" while reading {purpose}" if purpose else ""
    if not os.path.isfile(path):
        raise InputError(f"{path}: video file not found{why}")
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path}: cannot open the file{why}: damaged, truncated or not a video ({exc})"
        ) from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: the file holds no video stream")
    return container


def video_info(path: str | os.PathLike, *, exact: bool = False) -> VideoInfo:
    """Frame count, frame rate and size of the first video stream.

    The frame count comes from the container header; with ``exact=True`` (or where the header has
    none, as in many webm/mkv files) the frames are counted by decoding the whole stream.
    """
    import av

    container = _open_av(path)
    try:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        frames = int(stream.frames or 0)
        height, width = int(ctx.height), int(ctx.width)
        if exact or frames <= 0:
            frames = 0
            try:
                for frame in container.decode(video=0):
                    if frames == 0:
                        height, width = frame.height, frame.width
                    frames += 1
            except av.FFmpegError as exc:
                raise InputError(
                    f"{path}: decoding failed after {frames} frames ({exc}); the file is damaged or truncated"
                ) from None
    finally:
        container.close()
    if frames <= 0:
        raise InputError(f"{path}: the video stream holds no decodable frame")
    return VideoInfo(str(path), frames, fps, height, width)


def _not_enough(
    path: Any, wanted: int, available: int, asked: Sequence[int], *, folder: bool = False
) -> InputError:
    span = f"frames {asked[0]}..{asked[-1]}" if len(asked) > 1 else f"frame {asked[0]}"
    has = f"the folder has only {available} frame images" if folder else (
        f"the file has only {available} decodable frames (short or truncated video)"
    )
    return InputError(f"{path}: asked for frame {wanted} ({span}, {len(asked)} frames) but {has}")


def _read_pyav(path: str | os.PathLike, indices: list[int] | None, start: int) -> np.ndarray:
    import av

    container = _open_av(path, _asked(indices, start))
    out: list[np.ndarray] = []
    count = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        wanted = None if indices is None else sorted(set(indices))
        last = None if wanted is None else wanted[-1]
        keep = None if wanted is None else set(wanted)
        frames_by_index: dict[int, np.ndarray] = {}
        try:
            for frame in container.decode(stream):
                if (keep is None and count >= start) or (keep is not None and count in keep):
                    array = frame.to_ndarray(format="rgb24")
                    if keep is None:
                        out.append(array)
                    else:
                        frames_by_index[count] = array
                count += 1
                if last is not None and count > last:
                    break
        except av.FFmpegError as exc:
            asked = indices if indices else [start]
            raise InputError(
                f"{path}: decoding failed at frame {count} while reading frame {max(asked)} ({exc}); "
                "the file is damaged or truncated"
            ) from None
    finally:
        container.close()
    if indices is None:
        if not out:
            raise _not_enough(path, start, count, [start])
        return np.stack(out)
    missing = [i for i in indices if i not in frames_by_index]
    if missing:
        raise _not_enough(path, missing[0], count, indices)
    return np.stack([frames_by_index[i] for i in indices])


def _read_decord(path: str | os.PathLike, indices: list[int] | None, start: int) -> np.ndarray:
    try:
        import decord
    except ImportError:
        raise InputError("backend 'decord' asked for, but decord is not installed (pip install decord)") from None
    if not os.path.isfile(path):
        raise InputError(f"{path}: video file not found")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    except Exception as exc:  # decord raises its own DECORDError and RuntimeError
        raise InputError(
            f"{path}: cannot open the file while reading {_asked(indices, start)}: damaged, truncated or "
            f"not a video ({exc})"
        ) from None
    total = len(reader)
    if indices is None:
        indices = list(range(start, total))
        if not indices:
            raise _not_enough(path, start, total, [start])
    too_far = [i for i in indices if i >= total]
    if too_far:
        raise _not_enough(path, too_far[0], total, indices)
    try:
        frames = reader.get_batch(list(indices)).asnumpy()
    except Exception as exc:
        raise InputError(
            f"{path}: decord failed reading {_asked(indices, start)} ({exc}); the file is damaged or truncated, "
            "or its frame size is one decord mishandles (widths/heights not multiples of 32 are known to fail): "
            "use backend='pyav'"
        ) from None
    finally:
        del reader
    return np.ascontiguousarray(frames, dtype=np.uint8)


def read_video(
    path: str | os.PathLike,
    frames: int | None = None,
    start: int = 0,
    stride: int = 1,
    *,
    indices: Sequence[int] | None = None,
    backend: Backend = "pyav",
) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB frames ``start, start+stride, ...`` (``frames`` of them; all if None).

    ``indices`` picks arbitrary frame numbers instead (in the order given, repeats allowed).
    """
    if indices is not None:
        wanted = [int(i) for i in indices]
        if not wanted:
            raise InputError(f"{path}: no frame indices asked for")
        if min(wanted) < 0:
            raise InputError(f"{path}: frame indices must be >= 0, got {min(wanted)}")
    else:
        wanted = frame_indices(frames, start, stride)
        if wanted is None and stride != 1:
            raise InputError(f"{path}: stride {stride} needs a number of frames")
    if backend == "pyav":
        return _read_pyav(path, wanted, start)
    if backend == "decord":
        return _read_decord(path, wanted, start)
    raise InputError(f"unknown video backend {backend!r}; expected 'pyav' or 'decord'")


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.name,
    )


def is_frame_folder(path: str | os.PathLike) -> bool:
    """A folder that holds image files directly (StyleGAN-V's one-folder-per-video layout)."""
    folder = Path(path)
    return folder.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def read_frame_folder(
    folder: str | os.PathLike, frames: int | None = None, start: int = 0, stride: int = 1,
    *, indices: Sequence[int] | None = None,
) -> np.ndarray:
    """uint8 (T, H, W, 3) from a folder of images, ordered by lexicographic sort of file names.

    This is StyleGAN-V's ``VideoFramesFolderDataset`` order: zero-pad frame numbers in file names.
    """
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: frame folder not found")
    files = _image_files(folder)
    if not files:
        raise InputError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the frame folder")
    wanted = list(indices) if indices is not None else frame_indices(frames, start, stride)
    if wanted is None:
        wanted = list(range(start, len(files)))
        if not wanted:
            raise _not_enough(folder, start, len(files), [start], folder=True)
    too_far = [i for i in wanted if i >= len(files) or i < 0]
    if too_far:
        raise _not_enough(folder, too_far[0], len(files), wanted, folder=True)
    out = []
    size = None
    for i in wanted:
        try:
            with Image.open(files[i]) as image:
                array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except OSError as exc:
            raise InputError(f"{files[i]}: not a readable image ({exc})") from None
        if size is None:
            size = array.shape
        elif array.shape != size:
            raise InputError(
                f"{files[i]}: frame size {array.shape[1]}x{array.shape[0]} differs from "
                f"{size[1]}x{size[0]} of {files[wanted[0]].name} in the same folder"
            )
        out.append(array)
    return np.stack(out)


def frame_folder_length(folder: str | os.PathLike) -> int:
    return len(_image_files(Path(folder)))


def load_array(path: str | os.PathLike, key: str | None = None, *, mmap: bool = True) -> np.ndarray:
    """uint8 (N, T, H, W, 3) videos from a .npy file or one array of a .npz file.

    ``.npy`` files are memory-mapped so a large set is not read at once; nothing is unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: array file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.files)
                if key is None:
                    if len(names) != 1:
                        raise InputError(
                            f"{path}: the .npz file holds {len(names)} arrays ({', '.join(names)}); name one with key"
                        )
                    key = names[0]
                if key not in names:
                    raise InputError(f"{path}: no array {key!r} in the .npz file (has {', '.join(names)})")
                array = archive[key]
        else:
            raise InputError(f"{path}: expected a .npy or .npz file")
    except ValueError as exc:  # pickled object arrays, bad headers
        raise InputError(f"{path}: not a plain numeric array file ({exc})") from None
    where = f"{path}" + (f"[{key}]" if key else "")
    if array.dtype != np.uint8:
        raise InputError(
            f"{where}: expected dtype uint8 (values 0..255), got {array.dtype}; "
            "convert float videos with (x * 255).round().clip(0, 255).astype(np.uint8)"
        )
    if array.ndim != 5 or array.shape[-1] != 3:
        raise InputError(f"{where}: expected shape (N, T, H, W, 3), got {tuple(array.shape)}")
    if min(array.shape) < 1:
        raise InputError(f"{where}: empty array of shape {tuple(array.shape)}")
    return array


def list_videos(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Video files (mp4, avi, webm, mkv; any letter case) in ``folder``, sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: video folder not found")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    files = [p for p in candidates if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def encoder_for_mp4() -> str:
    """libx264 where this PyAV build has it, else the native mpeg4 encoder."""
    import av

    for name in ("libx264", "mpeg4"):
        if name in av.codecs_available:
            return name
    raise InputError("this PyAV build has neither the libx264 nor the mpeg4 encoder; cannot write mp4 previews")


def write_video(
    path: str | os.PathLike, video: np.ndarray | Any, fps: float, *, codec: str | None = None,
    crf: int = 18,
) -> Path:
    """Write uint8 (T, H, W, 3) for viewing: mp4 with libx264 (or mpeg4), .avi with mpeg4 (XVID tag).

    Lossy: metrics never read such files back. Odd heights/widths are padded by one edge row or
    column, since yuv420p needs even sizes.
    """
    import av

    if hasattr(video, "detach"):
        video = video.detach().cpu().numpy()
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or len(video) == 0:
        raise InputError(f"{path}: expected a uint8 video (T, H, W, 3), got {video.dtype} {tuple(video.shape)}")
    if not fps > 0:
        raise InputError(f"{path}: fps must be positive, got {fps}")
    pad_h, pad_w = video.shape[1] % 2, video.shape[2] % 2
    if pad_h or pad_w:
        video = np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    is_avi = path.suffix.lower() == ".avi"
    codec = codec or ("mpeg4" if is_avi else encoder_for_mp4())
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = int(video.shape[2]), int(video.shape[1])
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf)}
        elif codec == "mpeg4":
            # fixed quantiser 2 (ffmpeg's -q:v 2): the best quality mpeg4 offers
            stream.codec_context.flags |= av.codec.context.Flags.qscale
            stream.codec_context.global_quality = 2 * 118  # FF_QP2LAMBDA
            if is_avi:
                stream.codec_context.codec_tag = "XVID"  # what UCF-101's .avi files carry
        for array in video:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def iter_videos(
    items: Iterable[T],
    *,
    loader: Callable[[T], np.ndarray] | None = None,
    workers: int = 4,
    prefetch: int | None = None,
    **read_kwargs: Any,
) -> Iterator[tuple[T, np.ndarray]]:
    """Yield ``(item, video)`` in input order while later items decode in a thread pool.

    ``loader`` turns an item into a video (default: ``read_video(item, **read_kwargs)``, or
    ``read_frame_folder`` for folders). At most ``prefetch`` videos (default ``2 * workers``) are
    decoded ahead, so memory stays bounded; PyAV releases the GIL while decoding, so decoding
    overlaps with the caller's compute. An error is raised when its item's turn comes.
    """
    if loader is None:

        def loader(item: Any) -> np.ndarray:
            if Path(item).is_dir():
                return read_frame_folder(item, **read_kwargs)
            return read_video(item, **read_kwargs)

    elif read_kwargs:
        raise TypeError("pass read options to the loader itself when a loader is given")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    ahead = prefetch if prefetch is not None else 2 * workers
    iterator = iter(items)
    pending: deque[tuple[T, Future]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evalkit-decode") as pool:
        try:
            for item in iterator:
                pending.append((item, pool.submit(loader, item)))
                if len(pending) > ahead:
                    done_item, future = pending.popleft()
                    yield done_item, future.result()
            while pending:
                done_item, future = pending.popleft()
                yield done_item, future.result()
        finally:
            for _, future in pending:
                future.cancel()
