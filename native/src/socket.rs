//! Socket options Node does not expose: the IP type of service of S3 connections (--ipTOS, as
//! upstream sets it through libcurl). IPv6 sockets carry it as their traffic class.

use std::io;
use std::mem::size_of;

fn sockopt_int(fd: i32, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for writes of the sizes given; a bad fd is an error, not UB.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut libc::c_int).cast(), &mut len) };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The option that holds the type of service for this socket's address family.
fn tos_option(fd: i32) -> io::Result<(libc::c_int, libc::c_int)> {
    Ok(match sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)? {
        libc::AF_INET6 => (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
        _ => (libc::IPPROTO_IP, libc::IP_TOS),
    })
}

pub fn set_type_of_service(fd: i32, tos: u8) -> io::Result<()> {
    let (level, name) = tos_option(fd)?;
    let value = libc::c_int::from(tos);
    // SAFETY: value lives across the call and its size is given; a bad fd is an error, not UB.
    let rc =
        unsafe { libc::setsockopt(fd, level, name, (&value as *const libc::c_int).cast(), size_of::<libc::c_int>() as libc::socklen_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
pub fn type_of_service(fd: i32) -> io::Result<u8> {
    let (level, name) = tos_option(fd)?;
    Ok(sockopt_int(fd, level, name)? as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::io::AsRawFd;

    #[test]
    fn sets_and_reads_back_the_type_of_service() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let fd = stream.as_raw_fd();
        assert_eq!(type_of_service(fd).unwrap(), 0);
        set_type_of_service(fd, 0x10).unwrap();
        assert_eq!(type_of_service(fd).unwrap(), 0x10);
    }

    #[test]
    fn ipv6_sockets_take_it_as_their_traffic_class() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else { return }; // no IPv6 here
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        set_type_of_service(stream.as_raw_fd(), 0x08).unwrap();
        assert_eq!(type_of_service(stream.as_raw_fd()).unwrap(), 0x08);
    }

    #[test]
    fn a_descriptor_that_is_no_socket_is_an_error() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(set_type_of_service(file.as_raw_fd(), 0x10).is_err());
    }
}
