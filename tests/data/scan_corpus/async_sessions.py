"""Async sessions and connections: leaks and correct use."""

# ruff: noqa  (a scanner corpus: leak-prone code on purpose)

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

async_engine = create_async_engine("postgresql+asyncpg://app@db/app")
AsyncSessionLocal = async_sessionmaker(async_engine)


async def leaky_session():
    session = AsyncSessionLocal()  # expect: PD103
    await session.execute(text("select 1"))
    await session.commit()
    await session.close()


async def leaky_constructor():
    session = AsyncSession(async_engine)  # expect: PD103
    await session.execute(text("select 1"))


async def leaky_connection():
    conn = await async_engine.connect()  # expect: PD102
    await conn.execute(text("select 1"))


async def correct_session():
    async with AsyncSessionLocal() as session:
        await session.execute(text("select 1"))


async def correct_finally():
    session = AsyncSessionLocal()
    try:
        await session.execute(text("select 1"))
    finally:
        await session.close()


async def correct_connection():
    async with async_engine.connect() as conn:
        await conn.execute(text("select 1"))
