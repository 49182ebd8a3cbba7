#!/usr/bin/python3
"""A real RTSP camera for tests: GStreamer's RTSP server (gst-rtsp-server via PyGObject) serving
live, moving test video (H.264 or H.265) with optional audio (AAC, PCMA, PCMU), optionally behind
Digest or Basic authentication. Binds 127.0.0.1 only. Prints "READY <port>" once listening.

Run with Debian's /usr/bin/python3 (it has python3-gi), e.g.
  /usr/bin/python3 test/peers/rtsp-camera.py --port 0 --count 2 --codec h264 --audio aac --user u --password p
"""
import argparse
import signal
import sys

import gi

gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
gi.require_version('GstRtsp', '1.0')
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--port', type=int, default=8554, help='0 picks a free port (printed in READY)')
    p.add_argument('--path', action='append', default=[], help='mount path, repeatable (default /cam1)')
    p.add_argument('--count', type=int, default=0, help='serve /cam1../camN')
    p.add_argument('--codec', choices=['h264', 'h265'], default='h264')
    p.add_argument('--audio', choices=['none', 'aac', 'pcma', 'pcmu'], default='none')
    p.add_argument('--user')
    p.add_argument('--password', default='')
    # PyGObject types the method set as an enum, not flags, so one method at a time
    p.add_argument('--auth', choices=['digest', 'basic'], default='digest')
    p.add_argument('--width', type=int, default=640)
    p.add_argument('--height', type=int, default=360)
    p.add_argument('--fps', type=int, default=25)
    p.add_argument('--bitrate', type=int, default=1000, help='kbit/s')
    p.add_argument('--pattern', choices=['ball', 'smpte'], default='ball')
    p.add_argument('--session-timeout', type=int, default=0, help='seconds; 0 keeps the server default (60)')
    p.add_argument('--protocols', choices=['tcp', 'udp', 'both'], default='both', help='lower transports offered')
    return p.parse_args()


def has(element):
    return Gst.ElementFactory.find(element) is not None


def launch_line(a):
    gop = max(1, a.fps * 2)  # key frame every 2 s
    overlay = ' ! timeoverlay halignment=left valignment=top' if has('timeoverlay') else ''
    video = (
        f'videotestsrc is-live=true pattern={a.pattern} ! '
        f'video/x-raw,width={a.width},height={a.height},framerate={a.fps}/1{overlay} ! videoconvert ! video/x-raw,format=I420 ! '
    )
    if a.codec == 'h264':
        video += (
            f'x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bframes=0 bitrate={a.bitrate} ! '
            'video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1'
        )
    else:
        video += (
            f'x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={a.bitrate} '
            'option-string="bframes=0:log-level=error" ! rtph265pay name=pay0 pt=96 config-interval=-1'
        )
    if a.audio == 'none':
        return f'( {video} )'
    if a.audio == 'aac':
        audio = (
            'audiotestsrc wave=sine is-live=true ! audio/x-raw,rate=16000,channels=1 ! audioconvert ! '
            'avenc_aac ! rtpmp4gpay name=pay1 pt=97'
        )
    else:
        enc, pay = ('alawenc', 'rtppcmapay') if a.audio == 'pcma' else ('mulawenc', 'rtppcmupay')
        audio = (
            'audiotestsrc wave=sine is-live=true ! audio/x-raw,rate=8000,channels=1 ! audioconvert ! '
            f'{enc} ! {pay} name=pay1'
        )
    return f'( {video} {audio} )'


def main():
    a = parse_args()
    Gst.init(None)
    paths = list(a.path) + [f'/cam{i}' for i in range(1, a.count + 1)]
    if not paths:
        paths = ['/cam1']

    server = GstRtspServer.RTSPServer()
    server.set_address('127.0.0.1')
    server.set_service(str(a.port))

    if a.session_timeout > 0:
        def on_client(_server, client):
            client.connect('new-session', lambda _c, session: session.set_timeout(a.session_timeout))
        server.connect('client-connected', on_client)

    permissions = None
    if a.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string('media.factory.role', 'user')
        if a.auth == 'digest':
            auth.add_digest(a.user, a.password, token)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
        methods = {
            'digest': GstRtsp.RTSPAuthMethod.DIGEST,
            'basic': GstRtsp.RTSPAuthMethod.BASIC,
        }[a.auth]
        auth.set_supported_methods(methods)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role('user', 'media.factory.access', True)
        permissions.add_permission_for_role('user', 'media.factory.construct', True)

    line = launch_line(a)
    mounts = server.get_mount_points()
    for path in paths:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(line)
        factory.set_shared(True)  # one encoder per path, however many clients
        if permissions is not None:
            factory.set_permissions(permissions)
        if a.protocols != 'both':
            factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP if a.protocols == 'tcp' else GstRtsp.RTSPLowerTrans.UDP)
        mounts.add_factory(path if path.startswith('/') else '/' + path, factory)

    if server.attach(None) == 0:
        print(f'cannot listen on 127.0.0.1:{a.port}', file=sys.stderr, flush=True)
        sys.exit(1)
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f'READY {server.get_bound_port()}', flush=True)
    loop.run()


if __name__ == '__main__':
    main()
